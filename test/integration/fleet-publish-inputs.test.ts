// What `tabula-fleet` reads back is hostile too: a policy file to sign, and its own earlier output
// (the channel file whose serial the next publication must exceed). Damaged, huge or not a regular
// file, each is named with what is wrong, nothing is signed, and nothing already published changes.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { publishRsyncTree } from '../../src-main/fleet-publish';
import { runFleet } from '../../src-main/fleet';
import { createImageFleet, type ImageFleet } from '../fixtures/image-fleet';

let fleet: ImageFleet;
const keyFile = () => path.join(fleet.dir, 'fleet.key');
const channelFile = () => path.join(fleet.serverDir, 'channels/stable.json');
const failure = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('it did not fail');
};

beforeEach(() => {
  fleet = createImageFleet();
  fs.writeFileSync(keyFile(), fleet.key.privateKeyPem);
  publishRsyncTree({ treeDir: fleet.makeTree('v1', '1', 3), outDir: fleet.serverDir, version: '1', channel: 'stable', privateKeyPem: fleet.key.privateKeyPem });
});
afterEach(() => fleet.dispose());

it('a damaged channel file from before is named; no new version is signed over it, no serial guessed', () => {
  fs.writeFileSync(channelFile(), '{"format":"tabula-channel-1","serial":17');
  const before = { file: fs.readFileSync(channelFile()), sig: fs.readFileSync(`${channelFile()}.sig`) };
  expect(failure(() => runFleet(['refresh', '--channel', 'stable', '--key', keyFile(), '--out', fleet.serverDir]))).toMatch(/channels\/stable\.json, published before, is not valid JSON .*nothing was signed/);
  expect(failure(() => publishRsyncTree({ treeDir: fleet.makeTree('v2', '2', 3), outDir: fleet.serverDir, version: '2', channel: 'stable', privateKeyPem: fleet.key.privateKeyPem }))).toMatch(/published before, is not valid JSON/);
  expect(fs.existsSync(path.join(fleet.serverDir, 'images/2'))).toBe(false); // stopped before copying, not halfway
  expect(fs.readFileSync(channelFile())).toEqual(before.file);
  expect(fs.readFileSync(`${channelFile()}.sig`)).toEqual(before.sig);
});

it('a policy to sign that is damaged, huge or a FIFO is refused in words, without hanging', () => {
  const policy = path.join(fleet.dir, 'policy.json');
  const sign = () => runFleet(['sign-policy', '--policy', policy, '--key', keyFile(), '--out', fleet.serverDir]);
  fs.writeFileSync(policy, '{"format": "tabula-policy-1", "channel": ');
  expect(failure(sign)).toMatch(/policy\.json: is not valid JSON .*Nothing was signed/);
  fs.writeFileSync(policy, JSON.stringify({ format: 'tabula-policy-1', channel: 'beta', note: 'x'.repeat(2 << 20) }));
  expect(failure(sign)).toMatch(/policy\.json: is too large/);
  fs.rmSync(policy);
  expect(failure(sign)).toMatch(/policy\.json: does not exist/);
  execFileSync('mkfifo', [policy]);
  expect(failure(sign)).toMatch(/policy\.json: is not a regular file/);
  expect(fs.existsSync(path.join(fleet.serverDir, 'policy.json'))).toBe(false);
  // And a good one is signed.
  fs.rmSync(policy);
  fs.writeFileSync(policy, JSON.stringify({ format: 'tabula-policy-1', channel: 'beta' }));
  expect(sign()).toMatch(/^Wrote policy\.json and policy\.json\.sig/);
});
