// The manifest and signature checks that stand between a hostile server and a root tree.
import fc from 'fast-check';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import { generateKeyPair, requireSignature, sign, verify } from '../../src-main/core/signing';
import { parseManifest, symlinkEscapes, unsafePathReason } from '../../src-main/core/image/manifest';

const manifest = (entries: object[]) => Buffer.from(JSON.stringify({ format: 'tabula-manifest-1', version: '1.0', createdAt: '2026-01-01T00:00:00Z', entries }));
const file = (p: string) => ({ path: p, type: 'file', mode: 0o644, size: 1, sha256: 'a'.repeat(64) });
const dir = (p: string) => ({ path: p, type: 'dir', mode: 0o755, size: 0 });

describe('manifest paths', () => {
  it('accepts plain relative paths and refuses every way out of the tree', () => {
    expect(unsafePathReason('usr/lib/os-release')).toBeNull();
    expect(unsafePathReason('a/../../etc')).toMatch(/climbs out/);
    expect(unsafePathReason('/etc/shadow')).toMatch(/absolute/);
    expect(unsafePathReason('a//b')).toMatch(/empty/);
    expect(unsafePathReason('./a')).toMatch(/"\."/);
    expect(unsafePathReason('a\0b')).toMatch(/NUL/);
  });

  it('never lets a path that passes the check resolve outside the tree (property)', () => {
    const segment = fc.oneof(fc.constantFrom('..', '.', '', 'etc', 'a b', 'ü', '...', '..a'), fc.string({ maxLength: 4 }));
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 6 }), fc.boolean(), (parts, abs) => {
        const p = (abs ? '/' : '') + parts.join('/');
        if (unsafePathReason(p) !== null) return;
        const resolved = path.posix.resolve('/root/tree', p);
        expect(resolved.startsWith('/root/tree/')).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('knows which links escape', () => {
    expect(symlinkEscapes('etc/os-release', '../usr/lib/os-release')).toBe(false);
    expect(symlinkEscapes('etc/x', '../../root')).toBe(true);
    expect(symlinkEscapes('x', '..')).toBe(true);
    expect(symlinkEscapes('bin/sh', '/usr/bin/dash')).toBe(false); // absolute: inside the booted system
  });

  it('refuses malformed manifests with a reason', () => {
    const reason = (bytes: Buffer) => {
      try {
        parseManifest(bytes);
        return null;
      } catch (err) {
        expect(err).toBeInstanceOf(TabulaError);
        return (err as Error).message;
      }
    };
    expect(reason(Buffer.from('{'))).toMatch(/not valid JSON/);
    expect(reason(manifest([file('a/b')]))).toMatch(/before \(or without\) its folder/);
    expect(reason(manifest([dir('a'), file('a/b'), file('a/b')]))).toMatch(/twice/);
    expect(reason(manifest([{ path: 'x', type: 'file', mode: 0o644, size: 1 }]))).toMatch(/no checksum/);
    expect(reason(manifest([{ ...file('x'), mode: 0o100644 }]))).toMatch(/invalid value at "entries\.0\.mode"/);
    expect(reason(manifest([dir('a'), file('a/b')]))).toBeNull();
    expect(() => parseManifest(manifest([]), '2.0')).toThrow(/says version 1.0 but the channel names 2.0/);
  });
});

describe('ed25519 signatures', () => {
  it('verifies with the right key only, and over the exact bytes', () => {
    const k = generateKeyPair();
    const other = generateKeyPair();
    const sig = sign('payload', k.privateKeyPem);
    expect(verify('payload', sig, [k.publicKey])).toBe(true);
    expect(verify('payload', sig, [other.publicKey, k.publicKey])).toBe(true);
    expect(verify('payload ', sig, [k.publicKey])).toBe(false);
    expect(verify('payload', sig, [other.publicKey])).toBe(false);
    expect(verify('payload', 'garbage', [k.publicKey])).toBe(false);
    expect(verify('payload', sig, ['not a key'])).toBe(false);
    expect(() => requireSignature('payload', sig, [], 'The channel file')).toThrow(/No fleet key for images, channels and the policy is configured/);
    expect(() => sign('x', 'not pem')).toThrow(/not a PEM private key/);
  });
});
