// Emulated CUDA runtime: the data types cuBLAS calls name (see cuda_runtime.h).
#pragma once

enum cudaDataType_t : int { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 };
