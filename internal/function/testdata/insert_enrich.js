// An insert function in the shape of Segment's examples: enrich events
// before they reach the destination, mask what it must not see, and drop
// what it should not get at all.

const internalDomains = ['example.com']

async function onTrack(event, settings) {
  if (event.properties && event.properties.test === true) {
    throw new DropEvent('test events stay home')
  }
  event.properties = event.properties || {}
  event.properties.environment = settings.environment
  event.properties.revenue_cents = Math.round((event.properties.revenue || 0) * 100)
  delete event.properties.credit_card
  event.context = Object.assign({}, event.context, { enriched_by: 'insert' })
  return event
}

async function onIdentify(event, settings) {
  const email = event.traits && event.traits.email
  if (email && internalDomains.includes(email.split('@')[1])) {
    return // internal users are not sent: returning nothing drops the event
  }
  // Enrich from a profile service.
  const res = await fetch(`${settings.profiles}/profiles/${encodeURIComponent(event.userId)}`, {
    headers: { Authorization: `Bearer ${settings.token}` },
  })
  if (res.status === 404) return event
  if (!res.ok) throw new RetryError(`profile service: HTTP ${res.status}`)
  const profile = await res.json()
  event.traits = Object.assign({}, event.traits, {
    plan: profile.plan,
    lifetime_value: profile.ltv,
    email_sha256: crypto.createHash('sha256').update(email.trim().toLowerCase()).digest('hex'),
  })
  delete event.traits.email
  return event
}

// Page events pass unchanged; screen, group and alias events have no
// handler, so they are dropped.
function onPage(event) {
  return event
}
