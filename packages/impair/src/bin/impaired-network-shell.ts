#!/usr/bin/env node
import { shellMain } from '../cli/main.js';

process.exitCode = await shellMain(process.argv.slice(2));
