from bench.llm_throughput import bucket_case

if __name__ == "__main__":
    print(bucket_case(8, 16, 5.0, 0.25), flush=True)
    print(bucket_case(8, 16, 5.0, 0.0), flush=True)
