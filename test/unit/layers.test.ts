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
