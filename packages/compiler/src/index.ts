export * from './plan.js';
export * from './compile.js';
export * from './naming.js';
