import { writeFileSync } from 'node:fs';
import { ringToml } from './lib/topologies.mjs';
writeFileSync('/tmp/ring1k.toml', ringToml(1000, 1500).replace(/^/, ''));
