async function onTrack(event) {
  return event
}

function oops( {
