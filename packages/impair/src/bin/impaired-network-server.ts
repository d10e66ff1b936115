#!/usr/bin/env node
import { serverMain } from '../cli/main.js';

process.exitCode = await serverMain(process.argv.slice(2));
