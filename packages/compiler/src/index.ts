export * from './plan.js';
export * from './compile.js';
export * from './naming.js';
export { summarizePlan } from './summary.js';
export type { PlanEvent } from './events.js';
export * as cidr from './cidr.js';
export { serializePlanChunks } from './serialize.js';
export * from './synthetic.js';
export * from './netmirage.js';
