#!/usr/bin/env node
// packet_queue's command name: removes the rules a crashed server left.
import { clearMain } from '../cli/main.js';

process.exitCode = await clearMain(process.argv.slice(2), undefined, 'impaired_network_clear_iptables');
