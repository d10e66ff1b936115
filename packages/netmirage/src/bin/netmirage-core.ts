#!/usr/bin/env node
import { coreMain } from '../core-cli.js';

process.exitCode = await coreMain(process.argv.slice(2));
