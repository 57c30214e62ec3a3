// A React app using @jitsi/react-sdk's JitsiMeeting, bundled by support/embed.js with
// esbuild. Its props come from the page's query string (`domain`, `room`, `name`); the API
// object and the readyToClose callback are recorded on `window` for the test.
import { JitsiMeeting } from '@jitsi/react-sdk';
import { createRoot } from 'react-dom/client';

const query = new URLSearchParams(location.search);
const w = /** @type {any} */ (window);
w.events = [];

createRoot(document.getElementById('root')).render(
  <JitsiMeeting
    domain={query.get('domain')}
    roomName={query.get('room')}
    configOverwrite={{ prejoinConfig: { enabled: false } }}
    userInfo={{ displayName: query.get('name') }}
    getIFrameRef={(node) => {
      node.style.height = '400px';
    }}
    onApiReady={(api) => {
      w.api = api;
      api.addListener('videoConferenceJoined', (data) => w.events.push(['videoConferenceJoined', data]));
    }}
    onReadyToClose={() => w.events.push(['readyToClose', {}])}
  />,
);
