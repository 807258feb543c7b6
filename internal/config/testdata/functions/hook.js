async function onTrack(event, settings) {
  await fetch(`https://${settings.host}/t`, { method: "POST", body: JSON.stringify(event) })
}
