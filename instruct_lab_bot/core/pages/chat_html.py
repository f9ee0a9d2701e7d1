"""The chat page `/chat/<owner>/<repo>/<pr>` (pure): one HTML document, no external assets.

Answers stream token by token: the page's script posts the conversation to the PR's
OpenAI-compatible endpoint on the same server (`…/v1/chat/completions`, `stream: true`) and
appends each server-sent `delta.content` as text (never as markup). The script runs under a
per-response nonce (`script-src 'nonce-…'`, `connect-src 'self'`); every outside value is
escaped into the page or passed as a JSON data attribute.
"""

from __future__ import annotations

from html import escape

from instruct_lab_bot.core.chat_access import ChatRecord

_STYLE = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1f2328;
background:#f6f8fa;display:flex;flex-direction:column;min-height:100vh}
header{background:#24292f;color:#fff;padding:.7em 1em}
header h1{font-size:1.1em;margin:0;overflow-wrap:anywhere}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.1em .8em;margin:.5em 0 0;
font-size:.85em;color:#d0d7de}
dd{margin:0;overflow-wrap:anywhere}
main{flex:1;width:100%;max-width:50em;margin:0 auto;padding:1em;display:flex;
flex-direction:column;gap:.6em}
#seeds{display:flex;flex-wrap:wrap;gap:.4em}
#seeds button{font:inherit;font-size:.9em;text-align:left;border:1px solid #d0d7de;
background:#fff;border-radius:1em;padding:.3em .8em;cursor:pointer;max-width:100%;
overflow-wrap:anywhere}
#log{display:flex;flex-direction:column;gap:.5em}
.msg{padding:.6em .8em;border-radius:.6em;white-space:pre-wrap;overflow-wrap:anywhere;
max-width:90%}
.user{align-self:flex-end;background:#ddf4ff}
.assistant{align-self:flex-start;background:#fff;border:1px solid #d0d7de}
.error{align-self:stretch;background:#ffebe9;border:1px solid #ff8182}
form{display:flex;gap:.5em;position:sticky;bottom:0;background:#f6f8fa;padding:.5em 0}
textarea{flex:1;font:inherit;min-height:2.8em;max-height:10em;padding:.5em;border-radius:.4em;
border:1px solid #d0d7de;resize:vertical}
form button{font:inherit;padding:0 1.2em;border:0;border-radius:.4em;background:#1f883d;
color:#fff}
form button:disabled{background:#8c959f}
.hint{font-size:.85em;color:#57606a;margin:0}
"""

_SCRIPT = """
(function(){
var root=document.getElementById('chat');
var endpoint=root.dataset.endpoint, token=root.dataset.token;
var log=document.getElementById('log'), form=document.getElementById('ask');
var input=document.getElementById('q'), send=document.getElementById('send');
var history=[];
function bubble(kind,text){var d=document.createElement('div');d.className='msg '+kind;
d.textContent=text;log.appendChild(d);d.scrollIntoView({block:'end'});return d;}
function fail(text){bubble('error',text);}
async function ask(question){
  send.disabled=true;bubble('user',question);
  history.push({role:'user',content:question});history=history.slice(-20);
  var out=bubble('assistant','…'), answer='', started=false;
  try{
    var r=await fetch(endpoint,{method:'POST',headers:{'Content-Type':'application/json',
      'Authorization':'Bearer '+token},body:JSON.stringify({messages:history,stream:true})});
    if(!r.ok){var e;try{e=(await r.json()).error.message;}catch(x){e='HTTP '+r.status;}
      out.remove();fail(e);history.pop();return;}
    var reader=r.body.getReader(), dec=new TextDecoder(), buf='';
    for(;;){var part=await reader.read();if(part.done)break;
      buf+=dec.decode(part.value,{stream:true});var lines=buf.split('\\n');buf=lines.pop();
      for(var i=0;i<lines.length;i++){var line=lines[i];
        if(line.indexOf('data:')!==0)continue;var data=line.slice(5).trim();
        if(!data||data==='[DONE]')continue;var chunk;try{chunk=JSON.parse(data);}catch(x){continue;}
        if(chunk.error){fail(chunk.error.message||'the model failed');continue;}
        var ch=chunk.choices&&chunk.choices[0], c=ch&&ch.delta&&ch.delta.content;
        if(c){if(!started){started=true;answer='';}answer+=c;out.textContent=answer;
          out.scrollIntoView({block:'end'});}}}
    if(!started)out.textContent='(no answer)';
    history.push({role:'assistant',content:answer});
  }catch(x){fail('The connection to the bot failed: '+x);}
  finally{send.disabled=false;input.focus();}
}
form.addEventListener('submit',function(ev){ev.preventDefault();var q=input.value.trim();
  if(!q||send.disabled)return;input.value='';ask(q);});
input.addEventListener('keydown',function(ev){if(ev.key==='Enter'&&!ev.shiftKey){
  ev.preventDefault();form.requestSubmit();}});
var seeds=document.querySelectorAll('#seeds button');
for(var i=0;i<seeds.length;i++){seeds[i].addEventListener('click',function(ev){
  if(!send.disabled)ask(ev.currentTarget.textContent);});}
})();
"""


def _fact(name: str, value: str) -> str:
    return f"<dt>{name}</dt><dd>{escape(value)}</dd>" if value else ""


def render_chat(record: ChatRecord, endpoint: str, token: str, nonce: str) -> str:
    """The page for one PR's served model; `token` is what the script sends as its bearer."""
    pull = record.pull
    facts = "".join(
        (
            _fact("model", record.model_name),
            _fact("train job", record.train_job),
            _fact("base model", record.base_model),
            _fact("data job", record.data_job),
        )
    )
    seeds = "".join(f'<button type="button">{escape(s)}</button>' for s in record.seeds)
    seed_block = (
        '<p class="hint">The PR\'s seed questions (one click asks):</p>'
        f'<div id="seeds">{seeds}</div>'
        if seeds
        else '<div id="seeds"></div>'
    )
    data = f'data-endpoint="{escape(endpoint)}" data-token="{escape(token)}"'
    title = escape(f"Chat with {pull}")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f'<meta name="referrer" content="no-referrer"><title>{title}</title>'
        f"<style>{_STYLE}</style></head><body>"
        f'<header><h1>{title}</h1><dl>{facts}</dl></header><main id="chat" {data}>'
        f'{seed_block}<div id="log" aria-live="polite"></div>'
        '<form id="ask"><textarea id="q" name="q" maxlength="8000" required '
        'placeholder="Ask the model…" aria-label="Your question"></textarea>'
        '<button id="send" type="submit">Send</button></form>'
        '<p class="hint">Answers come from this pull request\'s fine-tuned model and may be '
        "wrong. The first answer after a quiet while waits for the model to start.</p>"
        f'</main><script nonce="{escape(nonce)}">{_SCRIPT}</script></body></html>\n'
    )


def csp(nonce: str) -> str:
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
