// @ts-check
/** Camera and microphone acquisition, with messages a person can act on. */

/**
 * @typedef {object} LocalMedia
 * @property {MediaStreamTrack | null} audio
 * @property {MediaStreamTrack | null} video
 * @property {string[]} errors one message per device that could not be opened
 */

/**
 * @param {unknown} err @param {'camera' | 'microphone' | 'camera and microphone'} what
 * @returns {string}
 */
export function describeMediaError(err, what) {
  const name = err instanceof Error ? err.name : '';
  switch (name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return `Access to your ${what} was denied. Allow it in your browser's site settings and reload the page. You can still join without it.`;
    case 'NotFoundError':
    case 'OverconstrainedError':
      return `No ${what} was found. Connect one and reload, or join without it.`;
    case 'NotReadableError':
      return `Your ${what} is in use by another application or could not be started.`;
    default:
      return `Your ${what} could not be opened${err instanceof Error ? ` (${err.message})` : ''}.`;
  }
}

/**
 * @param {{ micId?: string, camId?: string, height: number, audio: boolean, video: boolean }} want
 * @returns {Promise<LocalMedia>}
 */
export async function openLocalMedia(want) {
  /** @type {LocalMedia} */
  const media = { audio: null, video: null, errors: [] };
  if (!navigator.mediaDevices?.getUserMedia) {
    media.errors.push('This browser cannot use a camera or microphone here (a secure https:// page is needed).');
    return media;
  }
  const audio = want.audio ? { deviceId: want.micId ? { ideal: want.micId } : undefined, echoCancellation: true, noiseSuppression: true } : false;
  const video = want.video
    ? { deviceId: want.camId ? { ideal: want.camId } : undefined, height: { ideal: want.height }, width: { ideal: Math.round((want.height * 16) / 9) }, frameRate: { ideal: 30 } }
    : false;
  if (!audio && !video) return media;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio, video });
    media.audio = stream.getAudioTracks()[0] ?? null;
    media.video = stream.getVideoTracks()[0] ?? null;
    return media;
  } catch (err) {
    if (!(audio && video)) {
      media.errors.push(describeMediaError(err, audio ? 'microphone' : 'camera'));
      return media;
    }
    // Both failed together: try each alone so that one blocked device does not cost the other.
  }
  for (const [kind, constraints] of /** @type {const} */ ([
    ['audio', audio],
    ['video', video],
  ])) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ [kind]: constraints });
      media[kind] = (kind === 'audio' ? stream.getAudioTracks() : stream.getVideoTracks())[0] ?? null;
    } catch (err) {
      media.errors.push(describeMediaError(err, kind === 'audio' ? 'microphone' : 'camera'));
    }
  }
  if (media.errors.length === 2 && media.errors.every((e) => e.includes('denied'))) media.errors = [describeMediaError(new DOMException('', 'NotAllowedError'), 'camera and microphone')];
  return media;
}

/** @returns {Promise<{ mics: MediaDeviceInfo[], cams: MediaDeviceInfo[] }>} */
export async function listDevices() {
  const devices = (await navigator.mediaDevices?.enumerateDevices?.()) ?? [];
  return {
    mics: devices.filter((d) => d.kind === 'audioinput' && d.deviceId),
    cams: devices.filter((d) => d.kind === 'videoinput' && d.deviceId),
  };
}
