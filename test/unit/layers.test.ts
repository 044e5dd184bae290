// The layer rule of STYLE.md, enforced by ESLint: electron only in src-main/shell, no Node built-ins
// in the renderer or in code shared with it.
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const eslint = new ESLint();
async function importErrors(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: file });
  return result!.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('import layers', () => {
  it('refuses electron outside the shell', async () => {
    expect(await importErrors('src-main/core/x.ts', "import { app } from 'electron';\nexport const a = app;\n")).toEqual([
      expect.stringMatching(/Only src-main\/shell\/ may import electron/),
    ]);
    expect(await importErrors('src-main/shell/x.ts', "import { app } from 'electron';\nexport const a = app;\n")).toEqual([]);
  });

  it('refuses Node built-ins in the renderer and shared code', async () => {
    for (const file of ['src-renderer/x.ts', 'src-main/common/x.ts']) {
      expect(await importErrors(file, "import fs from 'node:fs';\nexport const a = fs;\n")).toEqual([expect.stringMatching(/no Node built-ins/)]);
      expect(await importErrors(file, "import path from 'path';\nexport const a = path;\n")).toHaveLength(1);
    }
    expect(await importErrors('src-main/core/x.ts', "import fs from 'node:fs';\nexport const a = fs;\n")).toEqual([]);
  });
});

async function boundaryErrors(file: string, spec: string): Promise<string[]> {
  const [result] = await eslint.lintText(`import { x } from '${spec}';\nexport const a = x;\n`, { filePath: file });
  return result!.messages.filter((m) => m.ruleId === 'tabula/feature-boundaries').map((m) => m.message);
}

describe('features are plug-ins', () => {
  it('refuses a feature importing another feature', async () => {
    expect(await boundaryErrors('src-main/core/image/x.ts', '../fleet/commands')).toEqual([expect.stringMatching(/image feature must not import the fleet feature/)]);
    expect(await boundaryErrors('src-main/core/helpdesk/x.ts', '../image/image-service')).toHaveLength(1);
    expect(await boundaryErrors('src-main/core/prefs/displays/x.ts', '../../sync/engine')).toHaveLength(1);
  });

  it('refuses shared code climbing up into a feature or the agent', async () => {
    expect(await boundaryErrors('src-main/core/runtime/x.ts', '../sync/service')).toEqual([expect.stringMatching(/Shared core code must not import the sync feature/)]);
    expect(await boundaryErrors('src-main/core/config.ts', './image/image-service')).toHaveLength(1);
    expect(await boundaryErrors('src-main/core/sync/x.ts', '../agent')).toEqual([expect.stringMatching(/a floor above/)]);
    expect(await boundaryErrors('src-main/core/sync/x.ts', '../../cli-sync')).toHaveLength(1);
  });

  it('lets a feature use its own files, the runtime, the shared core files and common/', async () => {
    for (const spec of ['./engine', '../runtime/clock', '../atomic-file', '../../common/errors', '../../common/contract/image', 'node:fs', 'zod']) {
      expect(await boundaryErrors('src-main/core/sync/x.ts', spec)).toEqual([]);
    }
    expect(await boundaryErrors('src-main/core/agent.ts', './sync/service')).toEqual([]);
  });
});
