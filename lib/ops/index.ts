// Every op, with its gradient registered on import.
export * from './elementwise.ts';
export * from './matmul.ts';
export * from './shape.ts';
export * from './optim.ts';
