// send.mjs sends one of each Segment call through @segment/analytics-node
// to a Conflux server, then prints one JSON line on stdout saying what went
// over the wire (every HTTP request body and response status) and every
// 'error' the library emitted. analyticsnode_test.go runs it and checks
// the server's log against the values below.
//
// Usage: node send.mjs <url> <writeKey>
// (or CONFLUX_URL and CONFLUX_WRITE_KEY in the environment). With
// SEND_DELAY_MS set, each request waits that long after the library stamps
// sentAt, as on a slow network, so that the server's clock-skew correction
// (timestamp = receivedAt - (sentAt - originalTimestamp)) is measurable.
import { Analytics } from '@segment/analytics-node'

const url = process.argv[2] ?? process.env.CONFLUX_URL
const writeKey = process.argv[3] ?? process.env.CONFLUX_WRITE_KEY
if (!url || !writeKey) {
  console.error('usage: node send.mjs <url> <writeKey>')
  process.exit(2)
}

const delayMs = Number(process.env.SEND_DELAY_MS ?? 0)
const analytics = new Analytics({
  writeKey,
  host: url,
  path: '/v1/batch',
  flushAt: 5,
  maxRetries: 1,
  ...(delayMs > 0
    ? {
        httpClient: async (u, init) => {
          await new Promise((resolve) => setTimeout(resolve, delayMs))
          return fetch(u, init)
        },
      }
    : {}),
})

const requests = []
const responses = []
const errors = []
analytics.on('http_request', (req) => {
  requests.push({ url: req.url, headers: req.headers, body: JSON.parse(req.body) })
})
analytics.on('http_response', (res) => {
  responses.push({ status: res.status, url: res.url })
})
analytics.on('error', (err) => {
  errors.push({
    code: err.code,
    reason: String(err.reason),
    messageId: err.ctx?.event?.messageId ?? null,
  })
})

// The known values. analyticsnode_test.go holds the same ones.
analytics.identify({
  userId: 'node-user-1',
  traits: {
    email: 'ada@example.com',
    name: 'Ada',
    age: 36,
    nickname: 'Zoë <Amazing> & \u2028 🚀',
    address: { city: 'London', postalCode: 'NW1', geo: { lat: 51.5, lng: -0.12 } },
  },
  timestamp: '2024-03-01T12:00:00.250+01:00',
})
analytics.track({
  userId: 'node-user-1',
  event: 'Order Completed',
  messageId: 'node-custom-message-id-1',
  properties: {
    revenue: 19.99,
    currency: 'EUR',
    products: [{ sku: 'a-1', qty: 2 }, { sku: 'b-2', qty: 1 }],
    tags: ['x', 'y'],
  },
  integrations: { All: true, Mixpanel: false, Amplitude: { sessionId: 1234 } },
})
analytics.page({
  anonymousId: 'node-anon-1',
  category: 'Docs',
  name: 'Getting Started',
  properties: { path: '/docs/start', title: 'Start here' },
  context: { locale: 'en-GB', traits: { plan: 'pro' }, custom: { a: 1 } },
  timestamp: new Date('2024-02-29T23:59:59.999Z'),
})
analytics.screen({
  userId: 'node-user-1',
  name: 'Home',
  properties: { variant: 'b' },
})
analytics.group({
  userId: 'node-user-1',
  groupId: 'node-group-1',
  traits: { name: 'Initech', employees: 250, industry: 'Software' },
  timestamp: new Date('2024-01-15T08:30:00.000Z'),
})
analytics.alias({
  userId: 'node-user-1',
  previousId: 'node-anon-1',
})
analytics.track({
  userId: 'node-user-1',
  event: 'Direct Call',
  context: { direct: true },
})

await analytics.closeAndFlush({ timeout: 10000 })
process.stdout.write(JSON.stringify({ requests, responses, errors }) + '\n')
