// The agent's end of the tabula-helper protocol against real child processes that break it: garbage,
// a result of the wrong shape or for another verb, hostile progress, an endless line, talk after the
// answer. Each call fails with a message that says tabula-helper broke its protocol, and nothing of
// the reply is used. (The real helper is run in image-agent.test.ts and helper-polkit.test.ts.)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ImageUpdateProgress } from '../../src-main/common/contract/image';
import { createHelperClient } from '../../src-main/core/image/helper-client';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-helper-protocol-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A helper that prints `out` (JS source of a string expression) and exits with `code`. */
function fakeHelper(name: string, out: string, code = 0) {
  const script = path.join(dir, `${name}.js`);
  fs.writeFileSync(script, `process.stdout.write(${out}, () => process.exit(${code}));\n`);
  return createHelperClient({ helperScript: script });
}

const deployments = { backend: 'rsync-tree', booted: { version: '1.0', checksum: null }, staged: null, rollback: null, reimagePending: false };
const line = (o: object) => JSON.stringify(JSON.stringify(o) + '\n');

describe.skipIf(process.getuid?.() !== 0)('tabula-helper protocol, agent side', () => {
  it('a well-formed reply: progress is passed on, the result returned', async () => {
    const seen: ImageUpdateProgress[] = [];
    const helper = fakeHelper('good', `${line({ type: 'progress', progress: { phase: 'downloading', bytesDone: 10, bytesTotal: 100, percent: 10 } })} + ${line({ type: 'result', result: { verb: 'stage', version: '2.0', bytesReceived: 10, deployments } })}`);
    await expect(helper.run(['stage'], (p) => seen.push(p))).resolves.toMatchObject({ verb: 'stage', version: '2.0' });
    expect(seen).toEqual([{ phase: 'downloading', bytesDone: 10, bytesTotal: 100, percent: 10 }]);
  });

  it('garbage on stdout, even followed by a valid result, fails the call in words', async () => {
    const helper = fakeHelper('garbage', `"\\u001b[31mSegmentation fault (core dumped)\\n" + ${line({ type: 'result', result: { verb: 'status', deployments, available: null, serverData: null } })}`);
    await expect(helper.run(['status'])).rejects.toMatchObject({ code: 'helper-failed', message: expect.stringMatching(/^tabula-helper answered something that is not its protocol \(not JSON: .*Segmentation fault.*\); nothing of that answer was used\.$/) });
  });

  it('a result of the wrong shape is refused, naming the field', async () => {
    const helper = fakeHelper('shape', line({ type: 'result', result: { verb: 'status', deployments: { ...deployments, booted: { version: 1 } }, available: null, serverData: null } }));
    await expect(helper.run(['status'])).rejects.toMatchObject({ code: 'helper-failed', message: expect.stringContaining('result.deployments.booted.version') });
  });

  it('a result for another verb than the one asked is refused', async () => {
    const helper = fakeHelper('verb', line({ type: 'result', result: { verb: 'reimage', version: '1.0', bytesReceived: 0, deployments } }));
    await expect(helper.run(['stage'])).rejects.toMatchObject({ code: 'helper-failed', message: 'tabula-helper answered "reimage" when asked to stage; nothing of that answer was used.' });
  });

  it('hostile progress (a percent that is not a number) is refused, not shown', async () => {
    const seen: unknown[] = [];
    const helper = fakeHelper('progress', `${line({ type: 'progress', progress: { phase: 'downloading', bytesDone: 1, bytesTotal: null, percent: '100; reboot' } })} + ${line({ type: 'result', result: { verb: 'rollback', deployments } })}`);
    await expect(helper.run(['rollback'], (p) => seen.push(p))).rejects.toMatchObject({ code: 'helper-failed', message: expect.stringContaining('progress.percent') });
    expect(seen).toEqual([]);
  });

  it('an endless line is cut off at the cap instead of filling the agent memory', async () => {
    const helper = fakeHelper('endless', `"x".repeat(8 * 1024 * 1024)`);
    await expect(helper.run(['status'])).rejects.toMatchObject({ code: 'helper-failed', message: expect.stringMatching(/not its protocol \(a line of \d+ characters\)/) });
  });

  it('anything after the answer makes the answer untrusted', async () => {
    const helper = fakeHelper('after', `${line({ type: 'result', result: { verb: 'rollback', deployments } })} + ${line({ type: 'error', error: { code: 'internal', message: 'x', retryable: false } })}`);
    await expect(helper.run(['rollback'])).rejects.toMatchObject({ code: 'helper-failed', message: 'tabula-helper went on after its answer; nothing of that answer was used.' });
  });

  it('a pull that checked but failed to stage exits 1 with its result: the check and the failure both reach the agent; any other result with exit 1 does not', async () => {
    const stageFailed = { code: 'image-invalid', message: 'Version 2.0 does not match its signed manifest.', retryable: false };
    const result = { verb: 'pull', deployments, available: { version: '2.0', checksum: null }, serverData: null, pulled: null, stageFailed };
    await expect(fakeHelper('stage-failed', line({ type: 'result', result }), 1).run(['pull'])).resolves.toMatchObject({ verb: 'pull', available: { version: '2.0' }, stageFailed });
    await expect(fakeHelper('pull-exit-1', line({ type: 'result', result: { ...result, stageFailed: undefined } }), 1).run(['pull'])).rejects.toMatchObject({ code: 'helper-failed', message: expect.stringMatching(/stopped unexpectedly \(exit 1\)/) });
  });

  it('an error the helper reports crosses intact', async () => {
    const helper = fakeHelper('error', line({ type: 'error', error: { code: 'image-unreachable', message: 'The update server cannot be reached.', retryable: true } }), 1);
    await expect(helper.run(['check'])).rejects.toMatchObject({ code: 'image-unreachable', message: 'The update server cannot be reached.', retryable: true });
  });
});
