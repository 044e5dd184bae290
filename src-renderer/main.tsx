import { createRoot } from 'react-dom/client';
import { createClient } from './api';
import { App, NoToken } from './app/App';
import { createStores } from './app/stores';

const client = createClient();
const root = createRoot(document.getElementById('root')!);
root.render(client ? <App stores={createStores(client)} /> : <NoToken />);
