import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { permanent, transient } from '../../domain/errors.ts';
import { BRIDGE_FILTERING_SETTING } from '../../domain/isolation.ts';
import type { Firewall, FirewallHook, FirewallState } from '../../domain/ports.ts';

const TIMEOUT_MS = 15_000;

interface ExecFailure {
  code?: string | number;
  stderr?: string;
  message?: string;
}

/**
 * {@link Firewall} over the `iptables-save`, `iptables-restore` and `iptables`
 * commands of the host's network namespace (the same backend Docker uses; on
 * Debian, iptables-nft). `-w` waits for the xtables lock another writer
 * (Docker, kube-proxy) holds instead of failing.
 */
export class IptablesFirewall implements Firewall {
  private readonly command: (name: string) => string;

  /** `binDir`: where the commands are; default: found on PATH. */
  constructor(binDir?: string) {
    this.command = (name) => (binDir === undefined ? name : `${binDir}/${name}`);
  }

  async read(chains: readonly string[], hooks: readonly FirewallHook[]): Promise<FirewallState> {
    const text = await this.run('iptables-save', ['-t', 'filter']);
    const state: FirewallState = { chains: {}, jumps: {}, existing: [] };
    const wanted = new Set(chains);
    for (const line of text.split('\n')) {
      const declared = /^:(\S+) /.exec(line);
      if (declared?.[1] !== undefined) {
        state.existing.push(declared[1]);
        if (wanted.has(declared[1])) state.chains[declared[1]] = [];
        continue;
      }
      const rule = /^-A (\S+) (.*)$/.exec(line);
      if (rule === null) continue;
      const [, chain = '', body = ''] = rule;
      state.chains[chain]?.push(body);
      for (const hook of hooks) {
        if (chain === hook.from && body === `-j ${hook.to}`) {
          const key = `${hook.from}>${hook.to}`;
          state.jumps[key] = (state.jumps[key] ?? 0) + 1;
        }
      }
    }
    return state;
  }

  async replaceChains(rules: Record<string, readonly string[]>): Promise<void> {
    // With --noflush, declaring a chain creates it or empties it, and every other
    // chain is left as it is; the whole input applies at once or not at all.
    const lines = ['*filter', ...Object.keys(rules).map((chain) => `:${chain} - [0:0]`)];
    for (const [chain, body] of Object.entries(rules)) for (const rule of body) lines.push(`-A ${chain} ${rule}`);
    lines.push('COMMIT', '');
    await this.run('iptables-restore', ['-w', '5', '--noflush'], lines.join('\n'));
  }

  async insertJump(hook: FirewallHook): Promise<void> {
    await this.run('iptables', ['-w', '5', '-t', 'filter', '-I', hook.from, '1', '-j', hook.to]);
  }

  async deleteJump(hook: FirewallHook): Promise<void> {
    await this.run('iptables', ['-w', '5', '-t', 'filter', '-D', hook.from, '-j', hook.to]);
  }

  async filtersBridgedTraffic(): Promise<boolean> {
    try {
      return (await readFile(BRIDGE_FILTERING_SETTING, 'utf8')).trim() === '1';
    } catch {
      // No file: br_netfilter is not loaded, so bridged traffic skips iptables.
      return false;
    }
  }

  private run(name: string, args: readonly string[], input?: string): Promise<string> {
    const file = this.command(name);
    const describe = `${name} ${args.join(' ')}`;
    return new Promise((resolve, reject) => {
      const fail = (error: ExecFailure, stderr: string): void => {
        const detail = (stderr.trim() || error.message || String(error.code)).split('\n')[0] ?? '';
        if (error.code === 'ENOENT') {
          reject(permanent('FirewallUnavailable', `${file} is not installed: the worker needs iptables to isolate instances (or set CTFLEET_FIREWALL=off, which leaves instances able to reach the node and private ranges).`, error));
        } else if (/permission denied|operation not permitted|you must be root/i.test(detail)) {
          reject(permanent('FirewallUnavailable', `${describe}: ${detail}. The worker needs root with NET_ADMIN in the host's network namespace to install its rules.`, error));
        } else {
          reject(transient('FirewallUnavailable', `${describe}: ${detail}`, error));
        }
      };
      if (input === undefined) {
        execFile(file, args, { timeout: TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
          if (error === null) resolve(stdout);
          else fail(error as ExecFailure, stderr);
        });
        return;
      }
      const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: TIMEOUT_MS });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('error', (error: ExecFailure) => {
        fail(error, stderr);
      });
      child.on('close', (code) => {
        if (code === 0) resolve(stdout);
        else fail({ code: code ?? 'signal', message: `exited ${String(code)}` }, stderr);
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(input);
    });
  }
}
