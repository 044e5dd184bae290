// The diagnostics bundle reads the config layers the way every config file is read: a layer that is a
// named pipe (nobody writing: a plain read blocks for ever), a link elsewhere or a huge file is named
// as a problem in the bundle, and the agent goes on answering.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createInProcessClient } from '../../src-main/common/clients';
import { createAgent, type Agent } from '../../src-main/core/agent';
import { resolvePaths } from '../../src-main/core/paths';
import { createSandbox, type AgentSandbox } from '../fixtures/headless-agent';

let sb: AgentSandbox;
let agent: Agent | null = null;
beforeEach(() => {
  sb = createSandbox();
});
afterEach(async () => {
  await agent?.shutdown();
  await sb.dispose();
});

it('a config layer that is a pipe, or a link, is named in the bundle instead of hanging the agent', async () => {
  const paths = resolvePaths(sb.env);
  fs.mkdirSync(path.dirname(paths.userConfigFile), { recursive: true });
  execFileSync('mkfifo', [paths.userConfigFile]);
  fs.mkdirSync(path.dirname(paths.adminConfigFile), { recursive: true });
  fs.symlinkSync('/etc/shadow', paths.adminConfigFile);
  agent = createAgent({ paths, autoStart: false, watchNetwork: () => () => undefined });
  const client = createInProcessClient(agent.router, agent.events);
  const bundle = JSON.parse((await client.call('helpdesk.diagnostics', {})).text) as { config: { layers: { file: string; problem?: string }[] } };
  const problemOf = (file: string) => bundle.config.layers.find((l) => l.file === file)?.problem;
  expect(problemOf(paths.userConfigFile)).toBe('is not a regular file (a pipe)');
  expect(problemOf(paths.adminConfigFile)).toBe('is a symbolic link, which Tabula does not follow here');
});
