#!/usr/bin/env node
/** `dune-agent`: see ../daemon/main.ts. */
import { realpathSync } from 'node:fs';
import { agentMain } from '../daemon/main.js';

const script = realpathSync(process.argv[1] ?? '');
process.exit(await agentMain(process.argv.slice(2), script));
