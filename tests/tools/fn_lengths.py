#!/usr/bin/env python3
# Functions longer than a limit (brace matching from each `fn` line; strings and comments
# stripped). Usage: tests/tools/fn_lengths.py [src] [120].
import re,os,sys
root=sys.argv[1] if len(sys.argv)>1 else 'src'; lim=int(sys.argv[2]) if len(sys.argv)>2 else 120
pat=re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?(unsafe\s+)?fn\s+(\w+)')
bad=0
for d,_,fs in os.walk(root):
  for f in fs:
    if not f.endswith('.rs'): continue
    p=os.path.join(d,f); L=open(p).read().split('\n')
    i=0
    while i<len(L):
      m=pat.match(L[i])
      if m:
        # find opening brace
        depth=0; started=False; j=i
        while j<len(L):
          line=re.sub(r'//.*','',L[j]); line=re.sub(r'"(\\.|[^"\\])*"','""',line); line=re.sub(r"'(\\.|[^'\\])'","''",line)
          if not started and ';' in line and '{' not in line: break
          for ch in line:
            if ch=='{': depth+=1; started=True
            elif ch=='}': depth-=1
          if started and depth==0: break
          j+=1
        n=j-i+1
        if started and n>lim: print(f"{p}:{i+1} {m.group(6)} {n}"); bad+=1
      i+=1
print("over",lim,":",bad)
