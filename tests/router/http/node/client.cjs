// The official `openai` npm package against the router's OpenAI-compatible door.
// Usage: node client.cjs BASE_URL (NODE_PATH names the node_modules holding `openai`).
// Prints one JSON line: the unary answer with its decision headers, and the streamed answer.
const OpenAI = require("openai");

async function main() {
  const client = new OpenAI({ baseURL: process.argv[2], apiKey: "unused", maxRetries: 0 });
  const messages = [{ role: "user", content: "What is the capital of France?" }];
  const { data, response } = await client.chat.completions
    .create({ model: "auto", messages })
    .withResponse();
  const stream = await client.chat.completions.create({
    model: "small",
    messages,
    stream: true,
    stream_options: { include_usage: true },
  });
  const pieces = [];
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    for (const choice of chunk.choices) {
      pieces.push(choice.delta.content || "");
      finish = choice.finish_reason || finish;
    }
    usage = chunk.usage || usage;
  }
  let missing = null;
  try {
    await client.chat.completions.create({ model: "no-such-model", messages });
  } catch (error) {
    missing = { status: error.status, type: error.type, message: error.message };
  }
  console.log(
    JSON.stringify({
      id: data.id,
      model: data.model,
      content: data.choices[0].message.content,
      usage: data.usage,
      tier: response.headers.get("x-rightsize-tier"),
      requestId: response.headers.get("x-rightsize-request-id"),
      streamed: pieces.join(""),
      streamFinish: finish,
      streamUsage: usage,
      missing,
    }),
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
