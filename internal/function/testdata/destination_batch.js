// A destination function with onBatch, as Segment documents it: the
// batch goes to the API's batch endpoint, which answers one result per
// event, and the function reports each event's status.

async function onBatch(events, settings) {
  const res = await fetch(settings.endpoint + '/v1/batch', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ events: events.map((e) => ({ id: e.messageId, type: e.type, name: e.event })) }),
  })
  if (res.status >= 500 || res.status === 429) throw new RetryError(`HTTP Status ${res.status}`)
  const { results } = await res.json()
  return results.map((r) => (r.ok ? { status: 200 } : { status: r.code, errormessage: r.error }))
}

async function onTrack(event, settings) {
  return onBatch([event], settings)
}
