import { createRoot } from 'react-dom/client';
import { createClient } from './api';
import { App, NoToken } from './components/App';
import { createStores } from './stores/status-stores';

const client = createClient();
const root = createRoot(document.getElementById('root')!);
root.render(client ? <App stores={createStores(client)} /> : <NoToken />);
