import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  engineLogConfig,
  jobContainerName,
  jobContainerSpec,
  loadSeccompProfile,
  WORK_DIR,
  type JobContainerOptions,
  type JobContainerRequest,
} from '../../activities/container-spec.js';
import {
  LABEL_ATTEMPT,
  LABEL_INSTANCE,
  LABEL_JOB_ID,
  LABEL_MANAGED,
  LABEL_SECRET_NAMES,
  SCRIPT_DIR,
  SCRIPT_PATH,
} from '../../domain/container-labels.js';

const request = (over: Partial<JobContainerRequest> = {}): JobContainerRequest => ({
  jobId: 'job-1',
  attempt: 2,
  image: 'hodei-worker:latest',
  script: 'echo hi',
  env: { GREETING: 'hello' },
  secrets: {},
  resources: { memoryMb: 256, cpus: 1.5, pidsLimit: 128, scratchMb: 100 },
  imageVolumes: [],
  ...over,
});

const options: JobContainerOptions = {
  instanceId: 'inst-1',
  seccompProfile: '{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[]}',
  logMaxBytes: 8 * 1024 * 1024,
};

describe('jobContainerSpec', () => {
  it('names the container after the job and its attempt, and runs the image unstarted and unattached', () => {
    const spec = jobContainerSpec(request(), options);
    expect(spec.name).toBe('hodei-job-1-2');
    expect(spec.name).toBe(jobContainerName('job-1', 2));
    // A scheduled job's id holds the fire time: its name keeps to Docker's characters, one per id.
    const scheduled = jobContainerName('nightly-2030-01-01T09:00:00Z', 1);
    expect(scheduled).toMatch(/^hodei-nightly-2030-01-01T09_00_00Z-[0-9a-f]{8}-1$/);
    expect(scheduled).not.toBe(jobContainerName('nightly-2030-01-01T09_00_00Z', 1));
    expect(spec.Image).toBe('hodei-worker:latest');
    expect(spec).toMatchObject({
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      Tty: false,
      OpenStdin: false,
    });
    expect(spec.HostConfig?.AutoRemove).toBe(false);
  });

  it('runs the script from its file, never from the command line', () => {
    expect(jobContainerSpec(request({ script: 'echo hi' }), options).Cmd).toEqual(['/bin/bash', SCRIPT_PATH]);
    expect(jobContainerSpec(request({ script: '#!/bin/sh\necho hi' }), options).Cmd).toEqual([SCRIPT_PATH]);
  });

  it('hardens the container: no network, no capabilities, no new privileges, the seccomp profile, an init, an unprivileged user', () => {
    const spec = jobContainerSpec(request(), options);
    expect(spec.NetworkDisabled).toBe(true);
    expect(spec.User).toBe('10001:10001');
    expect(spec.HostConfig).toMatchObject({
      Init: true,
      NetworkMode: 'none',
      Privileged: false,
      CapDrop: ['ALL'],
      ReadonlyRootfs: true,
    });
    expect(spec.HostConfig?.SecurityOpt).toEqual(['no-new-privileges', `seccomp=${options.seccompProfile}`]);
  });

  it('applies the job resources as engine limits', () => {
    const spec = jobContainerSpec(request(), options);
    expect(spec.HostConfig).toMatchObject({
      Memory: 256 * 1024 * 1024,
      // No swap beyond the memory limit.
      MemorySwap: 256 * 1024 * 1024,
      NanoCpus: 1_500_000_000,
      PidsLimit: 128,
    });
  });

  it('mounts only size-limited scratch (and the image volumes as scratch) plus the script volume', () => {
    const spec = jobContainerSpec(request({ imageVolumes: ['/data'] }), options);
    expect(spec.WorkingDir).toBe(WORK_DIR);
    expect(spec.HostConfig?.Tmpfs).toEqual({
      '/data': 'rw,nosuid,nodev,size=100m,mode=1777',
      [WORK_DIR]: 'rw,nosuid,nodev,size=100m,uid=10001,gid=10001,mode=0755',
      '/tmp': 'rw,nosuid,nodev,size=100m,mode=1777',
      '/var/tmp': 'rw,nosuid,nodev,size=64m,mode=1777',
      '/run/lock': 'rw,nosuid,nodev,size=1m,mode=1777',
    });
    expect(spec.HostConfig?.Mounts).toEqual([
      {
        Type: 'volume',
        Source: '',
        Target: SCRIPT_DIR,
        VolumeOptions: {
          NoCopy: true,
          Labels: {
            [LABEL_MANAGED]: 'true',
            [LABEL_JOB_ID]: 'job-1',
            [LABEL_INSTANCE]: 'inst-1',
            [LABEL_ATTEMPT]: '2',
          },
        },
      },
    ]);
  });

  it('gives a pipeline step with needs a second labelled volume, at /work/in, for its inputs', () => {
    const plain = jobContainerSpec(request(), options).HostConfig?.Mounts ?? [];
    const step = jobContainerSpec(request({ inputsVolume: true }), options).HostConfig?.Mounts ?? [];
    expect(plain.map((m) => m.Target)).toEqual([SCRIPT_DIR]);
    expect(step.map((m) => m.Target)).toEqual([SCRIPT_DIR, `${WORK_DIR}/in`]);
    expect(step[1]).toEqual({ ...step[0], Target: `${WORK_DIR}/in` });
  });

  it('labels the container with the installation, the job and the attempt, and the secrets by name only', () => {
    const plain = jobContainerSpec(request(), options);
    expect(plain.Labels).toEqual({
      [LABEL_MANAGED]: 'true',
      [LABEL_JOB_ID]: 'job-1',
      [LABEL_INSTANCE]: 'inst-1',
      [LABEL_ATTEMPT]: '2',
    });
    const withSecrets = jobContainerSpec(request({ secrets: { TOKEN: 's3cr3t', KEY: 'k' } }), options);
    expect(withSecrets.Labels?.[LABEL_SECRET_NAMES]).toBe('TOKEN,KEY');
    expect(JSON.stringify(withSecrets.Labels)).not.toContain('s3cr3t');
  });

  it('sets the env: defaults, HOME, the job env and its secrets over them, and tini killing the process group', () => {
    const spec = jobContainerSpec(
      request({ env: { GREETING: 'hello', PYTHONUNBUFFERED: '0' }, secrets: { TOKEN: 's3cr3t' } }),
      options,
    );
    expect(spec.Env).toEqual([
      'PYTHONUNBUFFERED=0',
      `HOME=${WORK_DIR}`,
      'GREETING=hello',
      'TOKEN=s3cr3t',
      'TINI_KILL_PROCESS_GROUP=1',
    ]);
  });

  it("bounds the engine's own log from the log cap, 1 MiB per file at least", () => {
    expect(jobContainerSpec(request(), options).HostConfig?.LogConfig).toEqual(engineLogConfig(options.logMaxBytes));
    expect(engineLogConfig(8 * 1024 * 1024)).toEqual({
      Type: 'local',
      Config: { 'max-size': String(8 * 1024 * 1024), 'max-file': '4', compress: 'true' },
    });
    expect(engineLogConfig(1000)?.Config?.['max-size']).toBe(String(1024 * 1024));
  });
});

describe('loadSeccompProfile', () => {
  it('reads the shipped profile as compact JSON', () => {
    const profile = JSON.parse(loadSeccompProfile()) as { defaultAction: string; syscalls: unknown[] };
    expect(typeof profile.defaultAction).toBe('string');
    expect(profile.syscalls.length).toBeGreaterThan(0);
  });

  it('refuses a file that is not a seccomp profile', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hodei-seccomp-'));
    try {
      const file = path.join(dir, 'profile.json');
      writeFileSync(file, '{"hello":"world"}');
      expect(() => loadSeccompProfile(file)).toThrow(/is not a seccomp profile/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
