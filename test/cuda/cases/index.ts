// Every op's CPU-vs-CUDA parity cases, one file per op family as in native/cuda.
import type { ParityCase } from '../../helpers/cuda.ts';
import { cases as activation } from './activation.ts';
import { cases as elementwise } from './elementwise.ts';
import { cases as gemm } from './gemm.ts';
import { cases as optim } from './optim.ts';

export const cases: ParityCase[] = [...elementwise, ...activation, ...gemm, ...optim];
