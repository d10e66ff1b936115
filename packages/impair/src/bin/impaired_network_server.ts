#!/usr/bin/env node
// packet_queue's command name: its REST bodies by default, its startup line.
import { serverMain } from '../cli/main.js';

process.exitCode = await serverMain(process.argv.slice(2), undefined, 'packet_queue');
