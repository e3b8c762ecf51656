/**
 * What every challenge container of a deployment gets, whatever its spec says:
 * the capabilities it keeps, no-new-privileges, resource defaults and maxima,
 * open-file limits and log rotation. Set per deployment (src/config); a spec may
 * ask for less, never for more.
 */
export interface HardeningProfile {
  /** Capabilities kept; every other one is dropped. */
  capabilities: string[];
  /** Resources of a spec that names none. */
  defaults: { cpu: string; memory: string; pids: number };
  /** A spec asking for more fails InvalidSpec, naming the field and the maximum. */
  maxima: { cpu: string; memory: string; pids: number };
  /** RLIMIT_NOFILE, soft and hard. */
  nofile: number;
  /** json-file log rotation: size of one file (Docker's `max-size`, e.g. `1m`) and how many are kept. */
  log: { maxSize: string; maxFiles: number };
}

/**
 * Docker's default set less NET_RAW (packet and ARP spoofing on a shared bridge),
 * MKNOD, SYS_CHROOT, SETFCAP and AUDIT_WRITE: what a challenge server needs to
 * bind a low port, change user and own its files.
 */
export const DEFAULT_CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP', 'NET_BIND_SERVICE'] as const;

/** Every capability name Linux knows (capabilities(7)), for validating configuration. */
export const KNOWN_CAPABILITIES = [
  'AUDIT_CONTROL', 'AUDIT_READ', 'AUDIT_WRITE', 'BLOCK_SUSPEND', 'BPF', 'CHECKPOINT_RESTORE', 'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH',
  'FOWNER', 'FSETID', 'IPC_LOCK', 'IPC_OWNER', 'KILL', 'LEASE', 'LINUX_IMMUTABLE', 'MAC_ADMIN', 'MAC_OVERRIDE', 'MKNOD', 'NET_ADMIN',
  'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_RAW', 'PERFMON', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_ADMIN', 'SYS_BOOT',
  'SYS_CHROOT', 'SYS_MODULE', 'SYS_NICE', 'SYS_PACCT', 'SYS_PTRACE', 'SYS_RAWIO', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'SYSLOG', 'WAKE_ALARM',
] as const;

export const DEFAULT_HARDENING: HardeningProfile = {
  capabilities: [...DEFAULT_CAPABILITIES],
  defaults: { cpu: '500m', memory: '256Mi', pids: 256 },
  maxima: { cpu: '2', memory: '2Gi', pids: 4096 },
  nofile: 4096,
  log: { maxSize: '1m', maxFiles: 3 },
};
