/**
 * Keys made by the real tools, as Chutney does (reference tor-testing.md §2):
 * `tor-gencert` for an authority's v3 identity and signing key, and
 * `tor --list-fingerprint` for any relay's identity, run before its torrc exists.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuneError } from '@dune/topology';

interface Ran {
  code: number | null;
  out: string;
}

function runTool(argv: readonly string[], stdin: string, timeoutMs = 60_000): Promise<Ran> {
  const [cmd, ...args] = argv;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd as string, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'ENOENT') {
        reject(new DuneError('tor-missing', `${cmd} is not installed`, { hint: 'install Debian\'s tor package: apt-get install -y tor (scripts/setup does)' }));
      } else reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
    child.stdin.end(stdin);
  });
}

function toolFailed(what: string, r: Ran): DuneError {
  return new DuneError('tor-keygen', `${what} failed (exit ${r.code ?? 'killed'}): ${r.out.trim().split('\n').slice(-3).join(' | ')}`, {
    hint: 'check that Debian\'s tor package works here: tor --version',
  });
}

/**
 * Creates `<dataDir>/keys/authority_{identity_key,signing_key,certificate}` for the
 * certificate's dir address `addr:dirPort`, and returns the v3 identity (the certificate's
 * `fingerprint` line).
 */
export async function makeAuthorityKeys(dataDir: string, nick: string, addr: string, dirPort: number): Promise<string> {
  const keys = join(dataDir, 'keys');
  mkdirSync(keys, { recursive: true, mode: 0o700 });
  const cert = join(keys, 'authority_certificate');
  const r = await runTool(
    ['tor-gencert', '--create-identity-key', '--passphrase-fd', '0', '-i', join(keys, 'authority_identity_key'), '-s', join(keys, 'authority_signing_key'), '-c', cert, '-m', '12', '-a', `${addr}:${dirPort}`],
    `${nick}\n`,
  );
  if (r.code !== 0) throw toolFailed(`tor-gencert for ${nick}`, r);
  const m = /^fingerprint ([0-9A-F]{40})$/m.exec(readFileSync(cert, 'utf8'));
  if (!m) throw new DuneError('tor-keygen', `${cert} has no fingerprint line`, { hint: 'remove the output directory and run dune tor init again' });
  return m[1] as string;
}

/**
 * The relay identity fingerprint of `dataDir`, creating its keys (`keys/secret_id_key`,
 * ed25519) when absent. tor runs with no torrc at all: a torrc with TestingTorNetwork but
 * no DirAuthority yet would make it exit.
 */
export async function relayFingerprint(dataDir: string): Promise<string> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const r = await runTool(['tor', '--ignore-missing-torrc', '-f', join(dataDir, 'no-torrc'), '--orport', '1', '--datadirectory', dataDir, '--list-fingerprint', '--quiet'], '');
  if (r.code !== 0) throw toolFailed(`tor --list-fingerprint in ${dataDir}`, r);
  const last = r.out.trim().split('\n').pop() ?? '';
  const fp = last.split(' ').slice(1).join('');
  if (!/^[0-9A-F]{40}$/.test(fp)) throw toolFailed(`tor --list-fingerprint in ${dataDir} (unexpected output)`, r);
  return fp;
}
