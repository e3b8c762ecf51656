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
  /**
   * Capabilities a spec may add to `capabilities` (`spec.security.capabilities.add`);
   * empty: none. Never one of {@link DANGEROUS_CAPABILITIES} unless the deployment
   * set the unsafe override.
   */
  allowedExtraCapabilities: string[];
  /** Runtimes a spec may name (`spec.security.runtime`); empty: only the engine's default. */
  allowedRuntimes: string[];
  /** Every container's root filesystem is read-only, whatever its spec says. */
  readOnlyRootFilesystem: boolean;
  /** The most tmpfs a spec may mount, its mounts' sizes added up (a quantity, e.g. `256Mi`). */
  maxTmpfsSize: string;
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

/**
 * Capabilities that break a container out of what ctfleet isolates, refused on
 * the extra-capability allow-list unless the deployment sets
 * `CTFLEET_UNSAFE_ALLOW_DANGEROUS_CAPABILITIES`. Instances share a node's
 * bridges with inter-container traffic off; the kernel, the node's devices and
 * the other containers' processes are shared too. Each one, and why:
 */
export const DANGEROUS_CAPABILITIES = {
  NET_RAW: 'raw and packet sockets: ARP and IP spoofing of the other containers on a shared bridge',
  NET_ADMIN: 'changes the container\'s routes, addresses and firewall: it can leave its isolation and spoof traffic',
  SYS_ADMIN: 'mount, namespaces, BPF and much more (and a wider seccomp profile): the usual first step of a container escape',
  SYS_MODULE: 'loads kernel modules: the node\'s kernel',
  SYS_PTRACE: 'ptrace and process_vm_* on every process it sees; Docker\'s seccomp profile opens more system calls with it',
  SYS_RAWIO: 'raw I/O ports and device memory of the node',
  SYS_BOOT: 'reboots the node and loads a new kernel (kexec)',
  MAC_ADMIN: 'changes the AppArmor/SELinux policy confining every container',
  MAC_OVERRIDE: 'overrides that policy',
  BPF: 'loads BPF programs into the shared kernel',
  PERFMON: 'performance monitoring of the whole node (side channels) and BPF helpers',
  DAC_READ_SEARCH: 'open_by_handle_at: reads files outside the container\'s root (the "shocker" escape)',
  MKNOD: 'creates device nodes: only the device cgroup then stands between it and the node\'s disks',
} as const;

export const DEFAULT_HARDENING: HardeningProfile = {
  capabilities: [...DEFAULT_CAPABILITIES],
  defaults: { cpu: '500m', memory: '256Mi', pids: 256 },
  maxima: { cpu: '2', memory: '2Gi', pids: 4096 },
  nofile: 4096,
  log: { maxSize: '1m', maxFiles: 3 },
  allowedExtraCapabilities: [],
  allowedRuntimes: [],
  readOnlyRootFilesystem: false,
  maxTmpfsSize: '256Mi',
};
