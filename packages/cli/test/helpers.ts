import type { Output } from '../src/output.js';

export function capture(): Output & { stdout: string; stderr: string } {
  const o = {
    stdout: '',
    stderr: '',
    isTTY: false,
    out(t: string) {
      o.stdout += t.endsWith('\n') ? t : `${t}\n`;
    },
    write(t: string) {
      o.stdout += t;
    },
    err(t: string) {
      o.stderr += t.endsWith('\n') ? t : `${t}\n`;
    },
  };
  return o;
}
