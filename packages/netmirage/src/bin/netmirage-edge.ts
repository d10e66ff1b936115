#!/usr/bin/env node
import { edgeMain } from '../edge-cli.js';

process.exitCode = await edgeMain(process.argv.slice(2));
