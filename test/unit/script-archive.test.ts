import { describe, expect, it } from 'vitest';
import { scriptCommand } from '../../activities/script-archive.js';

describe('scriptCommand', () => {
  it('runs a #! script directly and anything else with bash', () => {
    expect(scriptCommand('#!/usr/bin/env python3\nprint(1)')).toEqual(['/hodei/script']);
    expect(scriptCommand('echo hi')).toEqual(['/bin/bash', '/hodei/script']);
  });
});
