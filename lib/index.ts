// dino-ts: the public API.
export { Tensor, tensor, scalar, zeros, ones, full, shapeText, withDevice, defaultDevice, toDevice, type TensorOptions } from './engine/tensor.ts';
export { tidy, dispose } from './engine/scope.ts';
export { addon, type Attrs, type DType, type BuildInfo, type MemoryStats } from './engine/native.ts';
export { valueAndGrads, grads, noGrad, registerGradient, runOp, type GradFn, type TapeNode } from './autograd/tape.ts';
export * as ops from './ops/index.ts';
export { Generator, type GeneratorState } from './engine/random.ts';
export { Module, ModuleList, type ParameterOptions } from './nn/module.ts';
export { DINOLoss, type DINOLossOptions, type DINOLossDiagnostics } from './loss/dino-loss.ts';
export { cosineScheduler, teacherTempSchedule, linspace } from './optim/schedules.ts';
export { AdamW, type AdamWHyper, type AdamWParamState, type AdamWStateDict, type ParamGroup, type ParamGroupSpec } from './optim/adamw.ts';
export { getParamsGroups, setSchedules } from './optim/param-groups.ts';
export { nameGrads, clipGradients, cancelGradientsLastLayer, type NamedGrads } from './optim/grads.ts';
export { updateTeacher } from './optim/ema.ts';
export { SGD, type SgdOptions } from './optim/sgd.ts';
export { Linear, LayerNorm, BatchNorm1d, GELU, Sequential, PatchConv2d, WeightNormLinear, type Layer, type BatchNorm1dOptions } from './nn/layers.ts';
export {
  VisionTransformer, vitTiny, vitSmall, vitBase, interpolatePosEncoding, prepareTokens, sampleDropPathMasks,
  type VisionTransformerConfig, type ViTFactoryOptions, type ViTForwardOptions, type DropPathMasks, type DropPathRequest, type DropPathBranch,
} from './model/vit.ts';
export { DINOHead, type DINOHeadConfig } from './model/head.ts';
export { MultiCropWrapper } from './model/multicrop.ts';
export { initVisionTransformer, initDINOHead } from './model/init.ts';
export { readSafetensors, writeSafetensors, type SafetensorsContents } from './io/safetensors.ts';
export { saveCheckpoint, loadCheckpoint, adamwToCheckpoint, adamwFromCheckpoint, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, type CheckpointData, type CheckpointMeta, type JsonValue, type LoadedCheckpoint } from './io/checkpoint.ts';
export { readPth, writePth, backboneStateDict, readBackbone, type PthValue, type StateDict, type WritePthOptions } from './io/pth.ts';
export { convert } from './io/convert.ts';
export { FileFormatError } from './io/file.ts';
export { DinoTrainer, DEFAULT_CONFIG, ARCHITECTURES, OPTIMIZERS, NonFiniteLossError, configToArgs, argsToConfig, describeModel, type DinoConfig, type Architecture, type StepOptions, type TrainerOptions, type StepResult, type TrainerState } from './train/trainer.ts';
export { saveTrainerCheckpoint, loadTrainerCheckpoint } from './train/checkpoint.ts';
export { ImageDataset, loadImage, type ImageSource } from './data/dataset.ts';
export { decodeImage, readImageFile, ImageDecodeError, DEFAULT_MAX_PIXELS, type DecodeOptions } from './data/decode.ts';
export { imageFolder, tinyImageNet, IMAGE_EXTENSIONS, type FolderOptions, type TinyImageNetSplit } from './data/folder.ts';
export { idxDataset, readIdx, parseIdx, type IdxArray, type IdxDatasetOptions } from './data/idx.ts';
export { fashionMnist, embeddedFashionMnistDir, FASHION_MNIST_CLASSES, DEBIAN_FASHION_MNIST_DIR, type FashionMnistSplit } from './data/fashion-mnist.ts';
export { DataLoader, trainLoader, evalLoader, DataLoaderClosedError, type Batch, type LoaderOptions, type SkippedImage } from './data/loader.ts';
export { dinoTransform, evalCrop, type TransformSpec, type ImageTransform } from './data/transform.ts';
export { knnClassifier, knnPredict, DEFAULT_KNN_TEMPERATURE, DEFAULT_NB_KNN, type FeatureRows, type LabelledFeatures, type KnnOptions, type KnnPredictions, type KnnResult } from './eval/knn.ts';
export {
  extractFeatures, clsEncoder, clsAndPatchEncoder, pixelEncoder, defaultResize, spreadSubset, classIndexIn, saveFeatures, loadFeatures,
  type Encoder, type ExtractOptions, type ExtractedFeatures, type FeatureArray, type FeatureFile,
} from './eval/features.ts';
export { installationInfo, type InstallationInfo } from './cli/info.ts';
export {
  trainLinearProbe, linearFeatures, linearEncoder, linearFeatureDim, checkFeatureOptions, evaluateLinear, linearProbeStep, crossEntropy, topkCorrect,
  LinearClassifier, scaledLr, cosineAnnealingLr,
  type FeatureOptions, type LinearProbeOptions, type LinearProbeResult, type EpochRecord, type LinearMetrics,
} from './eval/linear.ts';
export { linearTrainCrop, drawLinearCrop, applyLinearCrop, type LinearCropOptions, type LinearCropParams } from './eval/linear-transform.ts';
export * as augment from './augment/index.ts';
export { prepareImage, attentionMaps, meanAttention, thresholdMasks, upsampleNearest, inputPicture, maskOverlay, writeAttentionPictures, type ImageSize, type NetworkInput, type AttentionMaps, type WriteAttentionOptions } from './viz/attention.ts';
export { VIRIDIS, colorize, randomColors } from './viz/colormap.ts';
export { writePng, writeAnimation, type Picture, type AnimationFormat, type AnimationOptions } from './viz/image-write.ts';
export { DinoAugmentation, evalTransform, type DinoAugmentationOptions, type CropParams, type EvalTransformOptions, type RgbImage } from './augment/index.ts';
export { runTraining, loadLatestCheckpoint, checkpointCandidates, CHECKPOINT, PREVIOUS_CHECKPOINT, type RunOptions, type RunResult, type RunStatus } from './train/run.ts';
export { resolveDevice, type DeviceChoice } from './engine/device.ts';
export { TrainingLog, readTrainingLog, type LogRecord, type StepRecord, type EpochRecord as TrainingEpochRecord, type StartRecord } from './train/log.ts';
export { EpochMonitor, collapseWarning, COLLAPSE_KL, type EpochDiagnostics } from './train/monitor.ts';
export { openDataset, BUNDLED_DATASET, type Split } from './data/open.ts';
export { loadBackbone, randomBackbone, inferBackboneSpec, type LoadedBackbone, type BackboneSpec, type LoadBackboneOptions, type CheckpointKey } from './eval/backbone.ts';
export { writeLossPlot, lossCurveSvg, type LossCurve } from './viz/loss-plot.ts';
