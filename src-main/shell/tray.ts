// Applies the tray model (computed in common/tray-model.ts) to Electron's Tray. No decisions here.
import { Menu, Tray, nativeImage } from 'electron';
import path from 'node:path';
import type { TrayAction, TrayModel } from '../common/tray-model';

export function createTray(iconDir: string, onAction: (action: TrayAction) => void) {
  const image = (icon: string) => nativeImage.createFromPath(path.join(iconDir, `tray-${icon}-22.png`));
  const tray = new Tray(image('idle'));
  tray.on('click', () => onAction('open'));
  return {
    apply(model: TrayModel) {
      tray.setImage(image(model.icon));
      tray.setToolTip(model.tooltip);
      tray.setContextMenu(
        Menu.buildFromTemplate(
          model.menu.map((item) => ({
            label: item.label,
            enabled: item.enabled,
            click: item.id === 'image' || item.id === 'backup-state' ? undefined : () => onAction(item.id as TrayAction),
          })),
        ),
      );
    },
    destroy: () => tray.destroy(),
  };
}
