#!/usr/bin/env node
import { main } from '../dune.js';

process.exitCode = await main(process.argv.slice(2));
