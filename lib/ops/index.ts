// Every op, with its gradient registered on import.
export * from './elementwise.ts';
export * from './matmul.ts';
export * from './shape.ts';
export * from './optim.ts';
export * from './attention.ts';
export * from './conv.ts';
export * from './interpolate.ts';
export * from './norm.ts';
export * from './activation.ts';
export * from './batchnorm.ts';
