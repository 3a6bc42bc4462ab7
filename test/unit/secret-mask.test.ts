import { describe, expect, it } from 'vitest';
import { containerSecrets, MASK, secretMasker } from '../../activities/secret-mask.js';
import { LABEL_SECRET_NAMES } from '../../domain/container-labels.js';

describe('secretMasker', () => {
  it('masks every occurrence in a line, the whole line, and leaves other lines alone', () => {
    const mask = secretMasker(['s3cr3t-value']);
    expect(mask('s3cr3t-value')).toBe(MASK);
    expect(mask('a=s3cr3t-value b=s3cr3t-value;s3cr3t-value')).toBe(`a=${MASK} b=${MASK};${MASK}`);
    expect(mask('nothing here')).toBe('nothing here');
  });

  it('masks the longer of two overlapping secrets whole', () => {
    const mask = secretMasker(['abcd', 'abcdefgh']);
    expect(mask('x abcdefgh y abcd')).toBe(`x ${MASK} y ${MASK}`);
  });

  it('masks a multi-line secret line by line, as output is stored', () => {
    const mask = secretMasker(['-----BEGIN KEY-----\r\nMIIEvQIBADANBgkqhkiG9w0\n-----END KEY-----']);
    expect(['-----BEGIN KEY-----', 'MIIEvQIBADANBgkqhkiG9w0', '-----END KEY-----'].map(mask)).toEqual([
      MASK,
      MASK,
      MASK,
    ]);
  });

  it('leaves values under 4 characters unmasked (documented) and is the identity without secrets', () => {
    const mask = secretMasker(['', 'on', 'yes']);
    expect(mask('on yes')).toBe('on yes');
    expect(secretMasker([])('line')).toBe('line');
  });
});

describe('containerSecrets', () => {
  it('reads the values of the variables the label names, and only those', () => {
    const config = {
      Env: ['FOO=bar', 'TOKEN=a=b=c', 'PASS=', 'HOME=/work'],
      Labels: { [LABEL_SECRET_NAMES]: 'TOKEN,PASS' },
    };
    expect(containerSecrets(config)).toEqual(['a=b=c', '']);
    expect(containerSecrets({ Env: ['TOKEN=x'], Labels: {} })).toEqual([]);
    expect(containerSecrets({ Env: null, Labels: null })).toEqual([]);
  });
});
