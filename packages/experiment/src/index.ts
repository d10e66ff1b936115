/**
 * @dune/experiment: DUNE's experiment runner (mpf) on @dune/lab, and the fidelity self-check.
 *
 *   import { runExperiment } from '@dune/experiment';
 *   const r = await runExperiment('bw-latency.toml', { onProgress: (p) => console.log(p) });
 *   console.log(r.summary, r.files.plots);
 */
export { readExperiment, parseExperiment, parseTarget, placeholders, substitute, defaultLabName, TARGET_HINT, type Experiment, type Variable, type Role, type Metric, type PlotSpec, type Target, type Readiness, type Order } from './spec.js';
export { combinations, planRuns, runKey, combinationKey, type PlannedRun, type Values } from './matrix.js';
export { METRIC_PARSERS, extractMetric, parsePingSummary, jsonPath, MetricError, type MetricParser, type RoleOutput, type PingSummary } from './metrics.js';
export { summarize, studentTQuantile, studentTCdf, incompleteBeta, type Summary } from './stats.js';
export { renderPlot, plotSeries, niceTicks, numericAxis, scaleUnit, type PlotInput, type PlotSeries } from './plot.js';
export { ResultsDir, summarizeRows, csvLine, csvField, type ResultRow, type CombinationSummary } from './results.js';
export { runExperiment, topologyFor, fingerprint, defaultOutDir, type RunExperimentOptions, type Progress, type ExperimentResult } from './runner.js';
export { calibrate, CALIBRATE_BACKENDS, type CalibrateBackend, type Calibration, type CalibrationRow, type CalibrateOptions } from './calibrate.js';
