export * from './tagbeez-service';
export * from './tagbeez-stack';
