// Layered configuration: embedded defaults → image defaults (/usr/share/defaults/tabula) → admin
// (/etc/tabula) → the user's ~/.config/tabula → TABULA_CONFIG. Missing files mean "no change"; a
// corrupt or invalid file is skipped with a problem naming it, and the other layers still apply.
import { schemaCheck } from './atomic-file';
import { mergeConfigLayers, type ConfigLayer, type LoadedConfig } from './config-layers';
import { layerSchema } from './config-schema';
import type { Paths } from './paths';

export { layerSchema, sshOptionsSchema, type FleetConfig, type ImageConfig, type TabulaConfig } from './config-schema';
export { embeddedDefaults } from './config-defaults';

export type { LoadedConfig } from './config-layers';

/**
 * `systemOnly`: only the image defaults and /etc, never a file the user can write. What decides
 * trust (fleet keys, image source) is read this way, by the agent and by tabula-helper alike.
 */
export function loadConfig(paths: Paths, opts: { systemOnly?: boolean } = {}): LoadedConfig {
  return mergeConfigLayers(paths, opts, schemaCheck<ConfigLayer>(layerSchema));
}
