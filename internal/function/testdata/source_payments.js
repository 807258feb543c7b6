// A source function for a payment provider's webhooks, in the shape of
// Segment's source function examples: check the signature, read the
// event, emit Segment calls.
//
// The provider signs each delivery: header Payments-Signature is
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed by the
// signing secret>".

function verify(request, settings) {
  const header = request.headers.get('payments-signature')
  if (!header) throw new ValidationError('missing Payments-Signature')
  const parts = Object.fromEntries(header.split(',').map((kv) => kv.split('=')))
  const expected = crypto.createHmac('sha256', settings.signingSecret)
    .update(parts.t + '.' + request.text())
    .digest('hex')
  if (!parts.v1 || !crypto.timingSafeEqual(Buffer.from(expected), Buffer.from(parts.v1))) {
    throw new ValidationError('bad signature')
  }
}

async function onRequest(request, settings) {
  verify(request, settings)
  const body = request.json()
  const data = body.data || {}
  const context = { source: request.url.searchParams.get('source') || 'webhook', ip: request.headers.get('X-Forwarded-For') }

  switch (body.type) {
    case 'customer.created':
      Segment.identify({
        userId: data.customer_id,
        traits: { email: data.email, name: data.name, plan: data.plan, createdAt: new Date(data.created * 1000).toISOString() },
        context,
      })
      if (data.company) {
        Segment.group({ userId: data.customer_id, groupId: data.company.id, traits: { name: data.company.name } })
      }
      break
    case 'charge.succeeded':
      Segment.track({
        event: 'Payment Succeeded',
        userId: data.customer_id,
        properties: { revenue: data.amount / 100, currency: data.currency.toUpperCase(), charge_id: data.id },
        context,
      })
      break
    case 'checkout.viewed':
      if (data.platform === 'ios') {
        Segment.screen({ userId: data.customer_id, name: 'Checkout', properties: { step: data.step } })
      } else {
        Segment.page({ anonymousId: data.anonymous_id, name: 'Checkout', properties: { url: data.url, step: data.step } })
      }
      break
    case 'customer.merged':
      Segment.alias({ previousId: data.old_customer_id, userId: data.customer_id })
      break
    case 'invoice.paid':
      Segment.set({ collection: 'invoices', id: data.id, properties: { amount: data.amount / 100, paid: true } })
      break
    default:
      throw new EventNotSupported(`${body.type} is not supported`)
  }
  console.log('handled', body.type)
}
