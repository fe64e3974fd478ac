#!/usr/bin/env python3
# Import cycles between the top-level modules of src/ (edges from `crate::X` paths, comments
# stripped). Usage: tests/tools/import_cycles.py [src]. Exit 1 when there is a cycle.
import re,os,sys,itertools
root=sys.argv[1] if len(sys.argv)>1 else 'src'
edges={}
def mod_of(path):
    rel=os.path.relpath(path,root)
    parts=rel[:-3].split('/')
    if parts[-1] in('mod',): parts=parts[:-1]
    return parts[0] if parts and parts[0] not in ('lib','main') else 'crate'
for d,_,fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs'): continue
        p=os.path.join(d,f); m=mod_of(p)
        src=open(p).read()
        # strip comments
        src=re.sub(r'//[^\n]*','',src)
        for t in re.findall(r'crate::(\w+)',src):
            if t!=m: edges.setdefault(m,set()).add(t)
        if m!='crate':
          for t in re.findall(r'\bsuper::super::(\w+)',src):
            if t!=m: edges.setdefault(m,set()).add(t)
# find cycles via tarjan
idx={};low={};st=[];on=set();sccs=[];c=[0]
def sc(v):
    idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
    for w in edges.get(v,()):
        if w not in idx: sc(w);low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        s=[]
        while True:
            w=st.pop();on.discard(w);s.append(w)
            if w==v:break
        sccs.append(s)
for v in list(edges):
    if v not in idx: sc(v)
bad=[s for s in sccs if len(s)>1]
for k in sorted(edges): print(k,'->',' '.join(sorted(edges[k])))
print('CYCLES:',bad if bad else 'none')
sys.exit(1 if bad else 0)
