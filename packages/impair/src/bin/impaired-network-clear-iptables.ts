#!/usr/bin/env node
import { clearMain } from '../cli/main.js';

process.exitCode = await clearMain(process.argv.slice(2));
