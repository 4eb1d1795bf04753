/**
 * @file A real one-node Slurm cluster in a temporary directory, for tests: its own munged (key
 * and socket in the directory), `slurmctld -D` and `slurmd -D` on free loopback ports, process
 * tracking by /proc (no cgroups, no systemd), accounting off. Debian's `slurm-wlm` and `munge`
 * provide the daemons; they need root. Clients reach it through `SLURM_CONF` in {@link LocalCluster.env}.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';

/** The programs a local cluster needs. */
export const SLURM_PROGRAMS = Object.freeze(['munged', 'mungekey', 'slurmctld', 'slurmd', 'sbatch', 'squeue', 'scancel', 'sinfo']);

export interface LocalCluster {
  dir: string;
  /** The environment that points Slurm's clients at this cluster. */
  env: NodeJS.ProcessEnv;
  /** The last lines of the daemons' logs, for a failure message. */
  logs(): Promise<string>;
  /** Cancels every job, waits for them to end, stops the daemons. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Why a local cluster cannot start here, or undefined when it can (root, and the programs on PATH).
 * @example const why = localClusterUnavailable(); if (why) console.warn(`skipping: ${why}`);
 */
export function localClusterUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'slurmd must run as root to start jobs, and this process is not root';
  const missing = SLURM_PROGRAMS.filter((p) => spawnSync('sh', ['-c', `command -v ${p}`]).status !== 0);
  if (missing.length) return `${missing.join(', ')} not found (install Debian's slurm-wlm and munge: apt-get install --no-install-recommends slurm-wlm munge)`;
  return undefined;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`local Slurm cluster: ${what} not ready after ${ms / 1000} s`);
    await sleep(200);
  }
}

/** The slurm.conf of a one-node cluster with `cpus` CPUs. */
export function localSlurmConf(dir: string, o: { node: string; cpus: number; ctldPort: number; slurmdPort: number }): string {
  return [
    'ClusterName=k3mlocal',
    `SlurmctldHost=${o.node}(127.0.0.1)`,
    `SlurmctldPort=${o.ctldPort}`,
    `SlurmdPort=${o.slurmdPort}`,
    'SlurmUser=root',
    'SlurmdUser=root',
    'AuthType=auth/munge',
    'CredType=cred/munge',
    `AuthInfo=socket=${join(dir, 'munge', 'munge.socket')}`,
    `StateSaveLocation=${join(dir, 'state')}`,
    `SlurmdSpoolDir=${join(dir, 'spool')}`,
    `SlurmctldPidFile=${join(dir, 'slurmctld.pid')}`,
    `SlurmdPidFile=${join(dir, 'slurmd.pid')}`,
    `SlurmctldLogFile=${join(dir, 'log', 'slurmctld.log')}`,
    `SlurmdLogFile=${join(dir, 'log', 'slurmd.log')}`,
    'ProctrackType=proctrack/linuxproc',
    'TaskPlugin=task/none',
    'SelectType=select/cons_tres',
    'SelectTypeParameters=CR_CPU',
    'JobAcctGatherType=jobacct_gather/none',
    'AccountingStorageType=accounting_storage/none',
    'JobCompType=jobcomp/none',
    'MpiDefault=none',
    'ReturnToService=2',
    // Start dependants as soon as their dependency ends (the defaults wait up to 3 s per hop).
    'SchedulerParameters=sched_min_interval=100000,batch_sched_delay=0',
    // scancel's SIGTERM is followed by SIGKILL after this many seconds.
    'KillWait=5',
    `NodeName=${o.node} NodeAddr=127.0.0.1 CPUs=${o.cpus} State=UNKNOWN`,
    'PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP',
    '',
  ].join('\n');
}

/**
 * Starts munged, slurmctld and slurmd under `dir` and waits until the node is idle.
 * @example const c = await startLocalCluster('/tmp/c', { cpus: 2 }); try { ... } finally { await c.stop(); }
 */
export async function startLocalCluster(dir: string, o: { cpus: number }): Promise<LocalCluster> {
  for (const d of ['munge', 'state', 'spool', 'log']) await mkdir(join(dir, d), { recursive: true });
  await chmod(join(dir, 'munge'), 0o700);
  const node = hostname().split('.')[0]!;
  const conf = join(dir, 'slurm.conf');
  await writeFile(conf, localSlurmConf(dir, { node, cpus: o.cpus, ctldPort: await freePort(), slurmdPort: await freePort() }));
  const env = { ...process.env, SLURM_CONF: conf };
  const children: ChildProcess[] = [];
  const daemon = (name: string, cmd: string, args: string[]) => {
    const out = createWriteStream(join(dir, 'log', `${name}.out`));
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    children.push(child);
    return child;
  };
  const exited = () => children.find((c) => c.exitCode !== null || c.signalCode !== null);
  const tail = async () => {
    const parts: string[] = [];
    for (const f of ['munged.out', 'slurmctld.out', 'slurmd.out']) {
      const text = await readFile(join(dir, 'log', f), 'utf8').catch(() => '');
      parts.push(`--- ${f}\n${text.split('\n').slice(-15).join('\n')}`);
    }
    return parts.join('\n');
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // Jobs run under slurmstepd, which outlives slurmd: end them through Slurm first.
    const ids = spawnSync('squeue', ['-h', '-o', '%i'], { env, encoding: 'utf8' }).stdout?.split('\n').filter(Boolean) ?? [];
    if (ids.length) {
      spawnSync('scancel', ids, { env });
      await waitFor('job cancellation', () => !spawnSync('squeue', ['-h', '-o', '%i'], { env, encoding: 'utf8' }).stdout?.trim(), 20_000).catch(() => undefined);
    }
    for (const c of [...children].reverse()) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const gone = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGTERM');
      await Promise.race([gone, sleep(5000).then(() => c.kill('SIGKILL'))]);
    }
  };
  try {
    const key = join(dir, 'munge', 'munge.key');
    const mk = spawnSync('mungekey', ['-c', '-k', key], { encoding: 'utf8' });
    if (mk.status !== 0) throw new Error(`mungekey: ${mk.stderr.trim()}`);
    const m = join(dir, 'munge');
    daemon('munged', 'munged', ['-F', '--force', `--socket=${join(m, 'munge.socket')}`, `--key-file=${key}`, `--pid-file=${join(m, 'munged.pid')}`, `--log-file=${join(m, 'munged.log')}`, `--seed-file=${join(m, 'munged.seed')}`]);
    await waitFor('munged', () => existsSync(join(m, 'munge.socket')) && !exited(), 10_000);
    daemon('slurmctld', 'slurmctld', ['-D', '-f', conf]);
    daemon('slurmd', 'slurmd', ['-D', '-f', conf, '-N', node]);
    await waitFor(
      'the node',
      () => {
        if (exited()) throw new Error(`local Slurm cluster: ${exited()!.spawnargs[0]} exited`);
        return /^idle/.test(spawnSync('sinfo', ['-h', '-o', '%t'], { env, encoding: 'utf8' }).stdout?.trim() ?? '');
      },
      30_000,
    );
  } catch (e) {
    const logs = await tail();
    await stop();
    throw new Error(`${(e as Error).message}\n${logs}`);
  }
  return { dir, env, logs: tail, stop };
}
