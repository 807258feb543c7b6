// A destination function in the shape of Segment's examples: each event
// goes to an API with Basic auth; connection errors, 5xx and 429 are
// retried; events missing what the API needs are rejected.

const base = (settings) => settings.endpoint.replace(/\/$/, '')

async function send(url, settings, body) {
  let res
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: {
        Authorization: `Basic ${btoa(settings.apiKey + ':')}`,
        'Content-Type': 'application/json',
        'X-Source': 'conflux',
      },
      body: JSON.stringify(body),
    })
  } catch (err) {
    throw new RetryError(err.message) // could not connect
  }
  if (res.status >= 500 || res.status === 429) {
    throw new RetryError(`HTTP Status ${res.status}`)
  }
  if (res.status >= 400) {
    throw new ValidationError(`HTTP Status ${res.status}: ${await res.text()}`)
  }
  return res
}

async function onTrack(event, settings) {
  if (!event.userId && !event.anonymousId) {
    throw new InvalidEventPayload('userId or anonymousId is required')
  }
  await send(`${base(settings)}/v1/events`, settings, {
    event_name: event.event,
    user_id: event.userId || event.anonymousId,
    event_properties: event.properties,
    timestamp: event.timestamp,
  })
}

async function onIdentify(event, settings) {
  const email = event.traits && event.traits.email
  if (!email || !/^[^@\s]+@[^@\s]+$/.test(email)) {
    throw new ValidationError('a valid email is required')
  }
  // The same Basic auth, built with Buffer as Node code does.
  const res = await fetch(`${base(settings)}/v1/users/${encodeURIComponent(event.userId)}`, {
    method: 'PUT',
    headers: new Headers({ authorization: 'Basic ' + Buffer.from(`${settings.apiKey}:`).toString('base64'), 'content-type': 'application/json' }),
    body: JSON.stringify({ email, name: event.traits.name }),
  })
  if (!res.ok) throw new RetryError(`HTTP Status ${res.status}`)
  const user = await res.json()
  console.log('user', user.id)
}

async function onGroup(event) {
  if (!event.traits || !event.traits.company) {
    throw new InvalidEventPayload('Company name is required')
  }
}

async function onAlias() {
  throw new EventNotSupported('Alias event is not supported')
}

async function onDelete(event, settings) {
  await send(`${base(settings)}/v1/deletions`, settings, { user_id: event.userId })
}
