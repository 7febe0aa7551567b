/**
 * What results contain: the transcript of Microsoft's docs, generated transcripts in the
 * three shapes the API is seen to send, generated file contents, gzip.
 *
 * @internal
 */
import { Effect } from "effect"

/** @internal The transcript of Microsoft's docs: raw newlines in a JSON string, NUL padding. */
export const SEED_TRANSCRIPT: string = `{
    "script_name": "minidump.ps1",
    "exit_code": 0,
    "script_output": "Transcript started, output file is C:\\\\ProgramData\\\\Microsoft\\\\Windows Defender Advanced Threat Protection\\\\Temp\\\\PSScriptOutputs\\\\PSScript_Transcript_{TRANSCRIPT_ID}.txt
C:\\\\windows\\\\TEMP\\\\OfficeClickToRun.dmp.zip\\n51 MB\\n\u0000\u0000\u0000",
    "script_error":""
}`

/** @internal */
export const encoder: TextEncoder = new TextEncoder()

/**
 * @internal A RunScript transcript; `variant % 3` picks the shape: BOM + `name` + string exit
 * code; `script_errors` + exit 1; plain JSON.
 */
export const transcriptFor = (script: string, args: string, variant: number): Uint8Array => {
  const output = `Transcript started, output file is C:\\ProgramData\\Microsoft\\Windows Defender Advanced Threat Protection\\Temp\\PSScriptOutputs\\PSScript_Transcript_${variant}.txt\n` +
    `${script} ${args}`.trim() + "\nDone.\n"
  const rawOutput = JSON.stringify(output).slice(1, -1).replace(/\\n/g, "\n") + "\u0000".repeat(8)
  switch (variant % 3) {
    case 0:
      return encoder.encode(
        `\uFEFF{"name": "${script}", "exit_code": "0", "script_output": "${rawOutput}", "script_error": ""}`
      )
    case 1:
      return encoder.encode(
        `{"script_name": "${script}", "exit_code": 1, "script_output": "${rawOutput}", "script_errors": "Access is denied.\n\u0000\u0000"}`
      )
    default:
      return encoder.encode(JSON.stringify({ script_name: script, exit_code: 0, script_output: output, script_error: "" }))
  }
}

/** @internal Deterministic, compressible file content for GetFile results. */
export const fileContent = (path: string, size: number): Uint8Array => {
  const line = encoder.encode(`${path}: simulated file content, line `)
  const out = new Uint8Array(size)
  let n = 0
  for (let i = 0; i < size;) {
    const text = encoder.encode(`${n++}\n`)
    for (const chunk of [line, text]) {
      out.set(chunk.subarray(0, Math.min(chunk.length, size - i)), i)
      i += chunk.length
      if (i >= size) break
    }
  }
  return out
}

/** @internal The bytes gzip-compressed. */
export const gzip = (bytes: Uint8Array): Effect.Effect<Uint8Array> =>
  Effect.promise(async () => {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream("gzip"))
    return new Uint8Array(await new Response(stream).arrayBuffer())
  })
