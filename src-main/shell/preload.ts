// Sandboxed preload: exposes exactly one small object (call + subscribe), never ipcRenderer itself.
import { contextBridge, ipcRenderer } from 'electron';
import { createPreloadBridge } from '../common/clients';

contextBridge.exposeInMainWorld('tabula', createPreloadBridge(ipcRenderer));
