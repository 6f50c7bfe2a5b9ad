# The efficiency comparison of seed 000 (a notebook cell quoting 莫烦Python's tutorial,
# https://morvanzhou.github.io/tutorials/python-basic/multiprocessing/4-comparison/), which seed
# 002 links as code/efficiency_comparison.py. The code below is the seed's cell as it stands, only
# trailing blanks removed; examples/efficiency_comparison.cpp runs it and reads the lines it already
# prints, "<method>: <result>" and "<method> time: <seconds>", for normal, multithread and multicore.
#
# Note what the seed measures: normal() runs the loop twice, and multithread() and multicore() give
# the whole loop to each of their two workers. Every method therefore does two passes over
# range(1000000) and prints twice the single sum, 2 * 249999833333583333000000.

#要完成数据处理工作
def job(q):
    res = 0
    for i in range(1000000):
        res += i + i**2 + i**3
    q.put(res) # queue

#通常采用的１个进程进程处理
def normal():
    res = 0
    for _ in range(2):
        for i in range(1000000):
            res += i + i**2 + i**3
    print('normal:', res)

#多线程方式，将数据分布在两个线程中运行
import threading as td

def multithread():
    q = mp.Queue() # thread可放入process同样的queue中
    t1 = td.Thread(target=job, args=(q,))
    t2 = td.Thread(target=job, args=(q,))
    t1.start()
    t2.start()
    t1.join()
    t2.join()
    res1 = q.get()
    res2 = q.get()
    print('multithread:', res1 + res2)



#multiprocessing多进程方式，将数据分布在两个进程中运行
import multiprocessing as mp

def multicore():
    q = mp.Queue()
    p1 = mp.Process(target=job, args=(q,))
    p2 = mp.Process(target=job, args=(q,))
    p1.start()
    p2.start()
    p1.join()
    p2.join()
    res1 = q.get()
    res2 = q.get()
    print('multicore:',res1 + res2)

#依次调用普通处理、多线程处理、多进程处理
import time

if __name__ == '__main__':
    #普通模式处理，并计算计算时间
    st = time.time()
    normal()
    st1 = time.time()
    print('normal time:', st1 - st)
    print(' ')

    #多线程模式处理，并计算计算时间
    multithread()
    st2 = time.time()
    print('multithread time:', st2 - st1)
    print(' ')

    #多进程模式处理，并计算计算时间
    multicore()
    print('multicore time:', time.time() - st2)
    print(' ')
