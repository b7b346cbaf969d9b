import numpy as np, alloy as al, alloy.config
from common import compare, import_example
va = import_example("vector_add").vector_add
N=1<<24; x=np.random.rand(N).astype(np.float32); y=x.copy(); z=np.empty_like(x)
for th in (1,2):
    alloy.config.set(num_threads=th)
    t = compare({b:(lambda b=b: va[al.cdiv(N,b)](x,y,N,out=z,BLOCK=b)) for b in (16,64,1024)} | {"np": lambda: np.add(x,y,out=z)})
    print(th, {k: round(v*1e3,1) for k,v in t.items()})
