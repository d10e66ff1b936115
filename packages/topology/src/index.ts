export * from './errors.js';
export * from './units.js';
export * from './model.js';
export * from './toml.js';
export * from './graphml.js';
export * from './read.js';
export * from './assignments.js';
export * from './node-kinds.js';
