// Every op, with its gradient registered on import.
export * from './elementwise.ts';
export * from './matmul.ts';
